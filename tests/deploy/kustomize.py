"""A small kustomize: renders k8s/ without kubectl, for the subset of kustomize it uses.

Debian's kubectl (package kubernetes-client, 1.20) embeds kustomize v2.0.3, which
cannot read a directory listed under ``resources`` and leaves a stray document
behind a ``$patch: delete``; a current kubectl is not packaged.  So the manifests
are checked on this renderer's output everywhere, and the renderer is checked
against ``kubectl kustomize`` wherever a kubectl with kustomize v4 or later exists
(tests/deploy/test_k8s.py).

The subset: ``resources`` (files and directories), ``namespace``, ``images``
(``newName``/``newTag``) and ``patches`` given by ``path``: strategic-merge patches
matched by kind and name, including ``$patch: delete`` of a whole object.  Lists
merge by the Kubernetes API's merge keys (containers and env by ``name``, ...);
where the renderer does not know how kustomize would merge, it raises rather than
guess.  Any other kustomization field raises too.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = frozenset({"apiVersion", "kind", "resources", "namespace", "images", "patches"})
# The merge key of each list the manifests patch (Kubernetes' patchMergeKey).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
# Lists a strategic merge replaces whole (no patchStrategy in the API).
REPLACED = frozenset({"args", "command", "accessModes", "volumeClaimTemplates", "drop", "add"})


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[Doc]:
    """The objects ``kubectl kustomize <directory>`` would print, in no particular order."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = sorted(set(spec) - SUPPORTED)
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {unknown}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        docs.extend(_resource(directory / entry))
    for patch in spec.get("patches", []):
        docs = _apply_patch(docs, directory, patch)
    for image in spec.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    if "namespace" in spec:
        for doc in docs:
            doc["metadata"]["namespace"] = spec["namespace"]
    return docs


def _resource(path: Path) -> list[Doc]:
    if path.is_dir():
        return render(path)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _apply_patch(docs: list[Doc], directory: Path, entry: dict[str, Any]) -> list[Doc]:
    if set(entry) != {"path"}:
        raise Unsupported(f"{directory}: patch {entry} (only `path:` patches)")
    patch = yaml.safe_load((directory / entry["path"]).read_text())
    key = (patch["kind"], patch["metadata"]["name"])
    matches = [d for d in docs if (d["kind"], d["metadata"]["name"]) == key]
    if len(matches) != 1:
        raise ValueError(f"{directory / entry['path']}: patch matches {len(matches)} objects")
    if patch.get("$patch") == "delete":
        return [d for d in docs if d is not matches[0]]
    merged = merge(matches[0], patch)
    return [merged if d is matches[0] else d for d in docs]


def merge(original: Any, patch: Any, field: str = "") -> Any:
    """A strategic merge of ``patch`` into ``original`` (neither is modified)."""
    if isinstance(original, dict) and isinstance(patch, dict):
        out = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(original, list) and isinstance(patch, list):
        return _merge_list(original, patch, field)
    return copy.deepcopy(patch)


def _merge_list(original: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field in REPLACED:
        return copy.deepcopy(patch)
    if field not in MERGE_KEYS:
        raise Unsupported(f"how kustomize merges the list {field!r}")
    key = MERGE_KEYS[field]
    patched = {item[key]: item for item in patch}
    known = {item[key] for item in original}
    # kustomize puts the items a patch adds first, then the original ones in order.
    added = [copy.deepcopy(item) for item in patch if item[key] not in known]
    kept = [merge(item, patched[item[key]]) if item[key] in patched else item for item in original]
    return added + copy.deepcopy(kept)


def _set_image(doc: Doc, image: dict[str, str]) -> None:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
