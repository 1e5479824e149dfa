#!/usr/bin/env python3
"""Cuts the part of an upstream API contract that the tests use.

    python3 subset.py gitea    UPSTREAM_v1_json > gitea-swagger-v1.json
    python3 subset.py telegram UPSTREAM_api.json > telegram-bot-api-spec.json

Every entry kept is the upstream entry as it is (the JSON is re-serialised
with sorted keys); nothing in it is edited. The roots below are what
nexus-testkit's swagger checker and nexus-notify's Bot API checker look up;
everything those roots reference ($ref, field types) is kept with them, so
the subset is closed (a test in nexus-testkit checks that it is). To check a
new definition or method, add it to the roots and cut again from upstream
(README.md in this directory says where upstream is).
"""
import json
import sys

GITEA_PATHS = [
    "/repos/{owner}/{repo}/issues",
    "/repos/{owner}/{repo}/issues/{index}",
    "/repos/{owner}/{repo}/issues/{index}/comments",
    "/repos/{owner}/{repo}/issues/{index}/labels",
    "/repos/{owner}/{repo}/labels",
    "/repos/{owner}/{repo}/labels/{id}",
    "/users/{username}",
]
GITEA_DEFINITIONS = [
    "Issue", "CreateIssueOption", "EditIssueOption", "Comment",
    "CreateIssueCommentOption", "Label", "CreateLabelOption", "IssueLabelsOption", "User",
    "APIError",
]
TELEGRAM_METHODS = ["sendMessage", "getUpdates", "answerCallbackQuery", "editMessageReplyMarkup"]
TELEGRAM_TYPES = ["Update", "Message", "CallbackQuery", "ResponseParameters"]


def refs(node, out):
    """Every "#/<section>/<name>" $ref below node, as (section, name)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/"):
                section, _, name = v[2:].partition("/")
                out.append((section, name))
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def gitea(spec):
    out = {k: spec[k] for k in spec if k not in ("paths", "definitions", "responses", "parameters")}
    out["paths"] = {p: spec["paths"][p] for p in GITEA_PATHS}
    keep = {"definitions": set(), "responses": set(), "parameters": set()}
    todo = [("definitions", d) for d in GITEA_DEFINITIONS]
    refs(out["paths"], todo)
    while todo:
        section, name = todo.pop()
        if name in keep[section]:
            continue
        keep[section].add(name)
        refs(spec[section][name], todo)
    for section, names in keep.items():
        out[section] = {n: spec[section][n] for n in sorted(names)}
    return out


def telegram(spec):
    out = {k: spec[k] for k in ("version", "release_date", "changelog")}
    out["methods"] = {m: spec["methods"][m] for m in TELEGRAM_METHODS}
    types, todo = set(), list(TELEGRAM_TYPES)
    for m in out["methods"].values():
        todo += [t for f in m.get("fields", []) for t in f["types"]] + m.get("returns", [])
    while todo:
        t = todo.pop()
        while t.startswith("Array of "):
            t = t[len("Array of "):]
        if t in types or t not in spec["types"]:
            continue
        types.add(t)
        ty = spec["types"][t]
        todo += [x for f in ty.get("fields", []) for x in f["types"]] + ty.get("subtypes", [])
    out["types"] = {t: spec["types"][t] for t in sorted(types)}
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("gitea", "telegram"):
        sys.exit(__doc__)
    with open(sys.argv[2], encoding="utf-8") as f:
        spec = json.load(f)
    cut = gitea(spec) if sys.argv[1] == "gitea" else telegram(spec)
    json.dump(cut, sys.stdout, indent=1, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
