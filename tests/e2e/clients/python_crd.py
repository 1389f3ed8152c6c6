"""The Python `kubernetes` client with CustomResourceDefinitions: the CRD through the typed
ApiextensionsV1Api (its status decodes into the typed model), then custom objects through
CustomObjectsApi: create, get, patch of the status subresource, a watch, delete. Exits
non-zero on any difference from what kube-apiserver would answer."""

import sys
import threading
import time

from kubernetes import client, config, watch

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.py.example.com"},
    "spec": {
        "group": "py.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 3}}},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}},
        }],
    },
}


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    ext = client.ApiextensionsV1Api()
    ext.create_custom_resource_definition(CRD)
    for _ in range(100):
        crd = ext.read_custom_resource_definition("widgets.py.example.com")
        conds = {c.type: c.status for c in (crd.status.conditions or [])}
        if conds.get("Established") == "True":
            break
        time.sleep(0.1)
    assert conds.get("Established") == "True", conds
    assert crd.status.accepted_names.list_kind == "WidgetList", crd.status.accepted_names
    print("established", crd.status.stored_versions)

    co = client.CustomObjectsApi()
    args = ("py.example.com", "v1", "default", "widgets")
    start_rv = co.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]
    seen = []
    ready = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        ready.set()
        for ev in w.stream(co.list_namespaced_custom_object, *args, resource_version=start_rv, timeout_seconds=20):
            seen.append(f"{ev['type']}:{ev['object']['metadata']['name']}")
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    ready.wait()
    made = co.create_namespaced_custom_object(*args, {"apiVersion": "py.example.com/v1", "kind": "Widget",
                                                      "metadata": {"name": "w1"}, "spec": {}})
    assert made["spec"]["size"] == 3, made
    got = co.patch_namespaced_custom_object_status(*args, "w1", {"status": {"ready": True}})
    assert got["status"]["ready"] is True, got
    co.delete_namespaced_custom_object(*args, "w1")
    t.join(25)
    print("watched", " ".join(seen))
    assert seen == ["ADDED:w1", "MODIFIED:w1", "DELETED:w1"], seen
    ext.delete_custom_resource_definition("widgets.py.example.com")


if __name__ == "__main__":
    main(sys.argv[1])
