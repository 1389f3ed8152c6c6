"""The Python `kubernetes` client (PyPI) against frontdoor: list, create, watch and delete
configmaps through the admin kubeconfig. Prints one line per step; exits non-zero on any
difference from what kube-apiserver would answer."""

import sys
import threading

from kubernetes import client, config, watch


def main(kubeconfig: str, namespace: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()

    names = [ns.metadata.name for ns in v1.list_namespace().items]
    assert "default" in names, names
    print("namespaces", ",".join(sorted(names)))

    listed = v1.list_namespaced_config_map(namespace)
    start_rv = listed.metadata.resource_version
    assert start_rv, "a List carries its resourceVersion"

    seen = []
    ready = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        ready.set()
        for ev in w.stream(v1.list_namespaced_config_map, namespace,
                           resource_version=start_rv, timeout_seconds=20):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    ready.wait()

    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="from-python", labels={"by": "python"}),
                              data={"k": "v"})
    created = v1.create_namespaced_config_map(namespace, body)
    assert created.metadata.uid and created.metadata.resource_version
    got = v1.read_namespaced_config_map("from-python", namespace)
    assert got.data == {"k": "v"}, got.data
    selected = v1.list_namespaced_config_map(namespace, label_selector="by=python").items
    assert [c.metadata.name for c in selected] == ["from-python"], selected
    try:
        v1.create_namespaced_config_map(namespace, body)
        raise AssertionError("a second create must be a 409")
    except client.exceptions.ApiException as e:
        assert e.status == 409 and e.reason == "Conflict", (e.status, e.reason)
    v1.patch_namespaced_config_map("from-python", namespace, {"data": {"k": "w"}})
    v1.delete_namespaced_config_map("from-python", namespace)

    t.join(timeout=30)
    print("watched", " ".join(f"{k}:{n}" for k, n in seen))
    assert seen == [("ADDED", "from-python"), ("MODIFIED", "from-python"), ("DELETED", "from-python")], seen


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
