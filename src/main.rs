use frontdoor::config::{self, AuthCommand, CertsCommand, Command};

/// mimalloc instead of glibc's malloc: a proxied request makes a few hundred small allocations
/// (pingora's tasks and headers, TLS records, the chain); see bench/proxy_callgrind.sh. Built
/// without transparent huge pages (`no_thp`): with them, every fresh 2 MiB of heap is zeroed at
/// first touch, which made a 3 MiB body's create cost a quarter more CPU (bench/body_cpu.py)
/// and an idle process hold more memory than it uses. Its tuning: `frontdoor::allocator`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    frontdoor::allocator::tune();
    let cli = match config::parse_cli() {
        Ok(c) => c,
        Err(msg) => {
            // clap renders help and version as "errors" too; those go to stdout with 0
            let is_info = msg.starts_with("Usage:") || msg.contains("\nUsage:") && !msg.starts_with("error");
            if is_info {
                print!("{msg}");
                std::process::exit(0);
            }
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            std::process::exit(2);
        }
    };
    // the one-shot commands print their answer; only the server logs its progress
    match &cli.command {
        Command::Serve(args) => {
            frontdoor::logging::init(&args.logging, frontdoor::logging::filter_for(args.logging.verbosity))
        }
        _ => frontdoor::logging::init(&Default::default(), "warn"),
    }
    let result = match cli.command {
        Command::Serve(args) => frontdoor::server::run(*args),
        Command::Certs { command: CertsCommand::Init(args) } => frontdoor::certs::init(&args).and_then(|_| {
            match &args.user {
                // the user's kubeconfig on stdout, as `kubeadm kubeconfig user` prints it
                Some(user) => {
                    let path = args.dir.join(format!("{}.kubeconfig", frontdoor::certs::file_name_of(user)));
                    print!("{}", std::fs::read_to_string(&path)?);
                    eprintln!("wrote {}", path.display());
                }
                None => println!("wrote development certificates to {}", args.dir.display()),
            }
            Ok(())
        }),
        Command::CheckPolicy(args) => match frontdoor::policy_check::check_policy(&args) {
            Ok(true) => Ok(()),
            Ok(false) => std::process::exit(1),
            Err(e) => Err(e),
        },
        Command::Auth { command: AuthCommand::CanI(args) } => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            match rt.block_on(frontdoor::policy_check::can_i(&args)) {
                Ok(true) => Ok(()),
                Ok(false) => std::process::exit(1),
                Err(e) => Err(e),
            }
        }
        Command::Version => {
            let v = frontdoor::endpoints::version::info();
            println!("frontdoor {} (Kubernetes API {})", env!("CARGO_PKG_VERSION"), v.git_version);
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
