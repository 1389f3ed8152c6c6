"""Lists every kind frontdoor stores with the Python `kubernetes` client's typed models: each
item is deserialized into its model (required fields, integers, timestamps, base64 are checked
by the models), so a stored object a typed client cannot decode fails this script."""

import sys

from kubernetes import client, config


def main(kubeconfig: str) -> None:
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    rbac = client.RbacAuthorizationV1Api()
    lists = {
        "namespaces": core.list_namespace,
        "configmaps": core.list_config_map_for_all_namespaces,
        "secrets": core.list_secret_for_all_namespaces,
        "serviceaccounts": core.list_service_account_for_all_namespaces,
        "events": core.list_event_for_all_namespaces,
        "roles": rbac.list_role_for_all_namespaces,
        "clusterroles": rbac.list_cluster_role,
        "rolebindings": rbac.list_role_binding_for_all_namespaces,
        "clusterrolebindings": rbac.list_cluster_role_binding,
        "apiservices": client.ApiregistrationV1Api().list_api_service,
        "leases": client.CoordinationV1Api().list_lease_for_all_namespaces,
    }
    for name, list_fn in lists.items():
        items = list_fn().items
        for item in items:
            assert item.metadata.name, f"{name}: an item without a name"
        print(name, len(items))


if __name__ == "__main__":
    main(sys.argv[1])
