//! `frontdoor certs init`: a development PKI with kubeadm's file names.

use base64::Engine;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct InitArgs {
    /// Directory to write the certificates and keys into.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Overwrite existing files (otherwise existing files are kept).
    #[arg(long)]
    pub force: bool,
    /// The server URL written into admin.kubeconfig.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    pub server: String,
    /// Also issue a client certificate for this user (its CN), signed by the client CA, and
    /// print a kubeconfig for it (written as <user>.kubeconfig too).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The group of --user (the O of its certificate). One only: rcgen writes one value per
    /// subject attribute; bind further groups' rights to the user with RBAC.
    #[arg(long = "group", value_name = "GROUP", requires = "user")]
    pub groups: Vec<String>,
}

/// Every file `certs init` writes, with kubeadm's names.
pub const FILES: [&str; 13] = [
    "ca.crt",
    "ca.key",
    "apiserver.crt",
    "apiserver.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "front-proxy-client.crt",
    "front-proxy-client.key",
    "sa.key",
    "sa.pub",
    "admin.crt",
    "admin.key",
    "admin.kubeconfig",
];

/// A CA loaded or generated, able to sign leaves.
struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem: String,
}

fn write_file(path: &Path, contents: &str, private: bool) -> std::io::Result<()> {
    // write to a temp file and rename, so a crash never leaves half a key
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}

fn load_or_create_ca(dir: &Path, name: &str, cn: &str, force: bool) -> anyhow::Result<Ca> {
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    if !force && crt.exists() && key.exists() {
        let pem = std::fs::read_to_string(&crt)?;
        let key = KeyPair::from_pem(&std::fs::read_to_string(&key)?)?;
        let params = CertificateParams::from_ca_cert_pem(&pem)?;
        let cert = params.self_signed(&key)?;
        return Ok(Ca { cert, key, pem });
    }
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let pem = cert.pem();
    write_file(&crt, &pem, false)?;
    write_file(&key_path(dir, name), &key.serialize_pem(), true)?;
    Ok(Ca { cert, key, pem })
}

fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key"))
}

/// A leaf certificate to issue: file name, subject, SANs and usage.
struct Leaf<'a> {
    name: &'a str,
    cn: &'a str,
    orgs: &'a [&'a str],
    sans: &'a [&'a str],
    usage: ExtendedKeyUsagePurpose,
}

/// Issues a leaf signed by `ca` unless both files exist (and not `force`).
fn issue(dir: &Path, ca: &Ca, leaf: Leaf<'_>, force: bool) -> anyhow::Result<()> {
    let Leaf { name, cn, orgs, sans, usage } = leaf;
    let crt = dir.join(format!("{name}.crt"));
    if !force && crt.exists() && key_path(dir, name).exists() {
        return Ok(());
    }
    let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    for o in orgs {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![usage];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    write_file(&crt, &cert.pem(), false)?;
    write_file(&key_path(dir, name), &key.serialize_pem(), true)?;
    Ok(())
}

/// Writes the whole development PKI into `dir`, keeping existing files unless `force`.
pub fn init(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir)?;
    let ca = load_or_create_ca(dir, "ca", "frontdoor-ca", args.force)?;
    let fp = load_or_create_ca(dir, "front-proxy-ca", "front-proxy-ca", args.force)?;
    let serving = Leaf {
        name: "apiserver",
        cn: "frontdoor",
        orgs: &[],
        sans: &["localhost", "127.0.0.1", "::1"],
        usage: ExtendedKeyUsagePurpose::ServerAuth,
    };
    issue(dir, &ca, serving, args.force)?;
    let proxy_client = Leaf {
        name: "front-proxy-client",
        cn: "front-proxy-client",
        orgs: &[],
        sans: &[],
        usage: ExtendedKeyUsagePurpose::ClientAuth,
    };
    issue(dir, &fp, proxy_client, args.force)?;
    let admin = Leaf {
        name: "admin",
        cn: "admin",
        orgs: &["system:masters"],
        sans: &[],
        usage: ExtendedKeyUsagePurpose::ClientAuth,
    };
    issue(dir, &ca, admin, args.force)?;

    let (sa_key, sa_pub) = (dir.join("sa.key"), dir.join("sa.pub"));
    if args.force || !sa_key.exists() || !sa_pub.exists() {
        let key = KeyPair::generate()?;
        write_file(&sa_key, &key.serialize_pem(), true)?;
        write_file(&sa_pub, &key.public_key_pem(), false)?;
    }
    let kubeconfig = dir.join("admin.kubeconfig");
    if args.force || !kubeconfig.exists() {
        write_kubeconfig(dir, &args.server, &ca.pem)?;
    }
    if let Some(user) = &args.user {
        if args.groups.len() > 1 {
            anyhow::bail!("--group: at most one group per certificate (given {:?})", args.groups);
        }
        let orgs: Vec<&str> = args.groups.iter().map(String::as_str).collect();
        let name = file_name_of(user);
        let leaf = Leaf { name: &name, cn: user, orgs: &orgs, sans: &[], usage: ExtendedKeyUsagePurpose::ClientAuth };
        issue(dir, &ca, leaf, true)?;
        user_kubeconfig(dir, &name, &args.server, &ca.pem)?;
    }
    Ok(())
}

/// A user name as a file name (`system:serviceaccount:a:b` -> `system-serviceaccount-a-b`).
pub fn file_name_of(user: &str) -> String {
    user.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '-' }).collect()
}

/// Writes `admin.kubeconfig` for `server`, embedding the CA and the admin client cert.
pub fn write_kubeconfig(dir: &Path, server: &str, ca_pem: &str) -> anyhow::Result<PathBuf> {
    user_kubeconfig(dir, "admin", server, ca_pem)
}

/// Writes `<name>.kubeconfig` for `server`, embedding the CA and `<name>.crt`/`.key`.
pub fn user_kubeconfig(dir: &Path, name: &str, server: &str, ca_pem: &str) -> anyhow::Result<PathBuf> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let crt = std::fs::read_to_string(dir.join(format!("{name}.crt")))?;
    let key = std::fs::read_to_string(dir.join(format!("{name}.key")))?;
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: frontdoor\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {name}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {name}@frontdoor\n  context:\n    cluster: frontdoor\n    user: {name}\ncurrent-context: {name}@frontdoor\n",
        b64(ca_pem),
        b64(&crt),
        b64(&key)
    );
    let path = dir.join(format!("{name}.kubeconfig"));
    write_file(&path, &text, true)?;
    Ok(path)
}

/// For `serve` on embedded defaults: make sure the dev PKI exists, and point the admin
/// kubeconfig at the address actually served.
pub fn ensure_dev_pki(dir: &Path, server: &str) -> anyhow::Result<PathBuf> {
    init(&InitArgs { dir: dir.to_path_buf(), force: false, server: server.to_string(), user: None, groups: vec![] })?;
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt"))?;
    write_kubeconfig(dir, server, &ca_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_kubeadm_names_and_keeps_existing() {
        let dir = std::env::temp_dir().join(format!("fd-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = InitArgs {
            dir: dir.clone(),
            force: false,
            server: "https://127.0.0.1:1".into(),
            user: None,
            groups: vec![],
        };
        init(&args).unwrap();
        for f in FILES {
            assert!(dir.join(f).exists(), "{f} missing");
        }
        let before = std::fs::read(dir.join("ca.key")).unwrap();
        std::fs::remove_file(dir.join("apiserver.crt")).unwrap();
        init(&args).unwrap();
        assert_eq!(before, std::fs::read(dir.join("ca.key")).unwrap(), "existing CA key kept");
        // the reissued serving cert still chains to the kept CA
        let crt = std::fs::read(dir.join("apiserver.crt")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&crt).unwrap();
        let cert = pem.parse_x509().unwrap();
        let (_, capem) = x509_parser::pem::parse_x509_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap();
        let ca = capem.parse_x509().unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        init(&InitArgs { force: true, ..args }).unwrap();
        assert_ne!(before, std::fs::read(dir.join("ca.key")).unwrap(), "--force regenerates");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
