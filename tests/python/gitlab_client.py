"""python-gitlab against Berth's management API (issue 4, acceptance 1 and 2).

Run by tests/e2e/python_gitlab.rs, which starts Berth, pushes images with podman, pulls one
three times and ages some tags in the database, then passes what it knows in the
environment. Every check compares with facts the Rust side measured (podman's digest, the
manifest's sizes), never with values this script computes from Berth's own answers.
Exits non-zero (an AssertionError or a python-gitlab error) on the first mismatch.
"""

import datetime
import json
import os
import sys
import time

import gitlab

API = os.environ["BERTH_API_URL"]
TOKEN = os.environ["BERTH_TOKEN"]
HOST = os.environ["BERTH_REGISTRY_HOST"]
V1_DIGEST = os.environ["BERTH_V1_DIGEST"]
V1_CONFIG = os.environ["BERTH_V1_CONFIG_DIGEST"]
V1_TOTAL_SIZE = int(os.environ["BERTH_V1_TOTAL_SIZE"])
BULK_TAGS = set(os.environ["BERTH_BULK_TAGS"].split(","))


def wait_for(what, probe, timeout=30.0):
    """Poll `probe` until it returns a truthy value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not reached in {timeout}s (last: {last!r})")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


gl = gitlab.Gitlab(API, private_token=TOKEN)
gl.auth()
check(gl.user.username == "maint", f"authenticated as {gl.user.username}")

project = gl.projects.get("py/app")
group = gl.groups.get("py")

# --- Repositories of the project and of the group, with tags and tags_count. ---
repos = project.repositories.list(tags=True, tags_count=True, get_all=True)
by_path = {r.path: r for r in repos}
check(set(by_path) == {"py/app", "py/app/bulk", "py/app/web"}, f"project repositories {set(by_path)}")
app = by_path["py/app"]
check(app.name == "", f"root repository name {app.name!r}")
check(app.project_id == project.id, "project_id")
check(app.location == f"{HOST}/py/app", f"location {app.location}")
check(app.tags_count == 1, f"tags_count {app.tags_count}")
# `tags` is python-gitlab's tag manager on the object; the listed tags are in attributes.
listed = app.attributes["tags"]
check([t["name"] for t in listed] == ["v1"], f"tags {listed}")
check(listed[0]["path"] == "py/app:v1" and listed[0]["location"] == f"{HOST}/py/app:v1", listed)
check(by_path["py/app/bulk"].tags_count == len(BULK_TAGS), "bulk tags_count")
check(by_path["py/app/web"].name == "web", "nested repository name")

grepos = group.registry_repositories.list(tags=True, tags_count=True, get_all=True)
check({r.path for r in grepos} == set(by_path), f"group repositories {[r.path for r in grepos]}")
check({r.path: r.tags_count for r in grepos} == {p: r.tags_count for p, r in by_path.items()}, "group tags_count")

single = gl.registry_repositories.get(app.id, tags=True, tags_count=True, size=True)
check(single.path == "py/app" and single.tags_count == 1, f"single repository {single.attributes}")
check(single.size == V1_TOTAL_SIZE, f"repository size {single.size} != {V1_TOTAL_SIZE}")

# --- Tag details, against what podman pushed. ---
tag = app.tags.get("v1")
check(tag.name == "v1", "name")
check(tag.path == "py/app:v1", f"path {tag.path}")
check(tag.location == f"{HOST}/py/app:v1", f"location {tag.location}")
check(tag.digest == V1_DIGEST, f"digest {tag.digest} != podman's {V1_DIGEST}")
check(tag.revision == V1_CONFIG.split(":", 1)[1], f"revision {tag.revision} != config {V1_CONFIG}")
check(tag.short_revision == tag.revision[:9], f"short_revision {tag.short_revision}")
check(tag.total_size == V1_TOTAL_SIZE, f"total_size {tag.total_size} != {V1_TOTAL_SIZE}")
created = parse_time(tag.created_at)
check(abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 600, f"created_at {tag.created_at}")

# --- Usage facts: the Rust side pulled v1 three times with podman (and sent HEADs). ---
def pulled_three():
    t = app.tags.get("v1")
    return t if t.pull_count == 3 and t.last_pulled_at else None

t = wait_for("pull_count 3", pulled_three, timeout=20)
check(parse_time(t.last_pulled_at) >= created, f"last_pulled_at {t.last_pulled_at}")
check(app.tags.get("v1").pull_count == 3, "pull_count moved past 3: HEADs counted?")

# --- Delete one tag. ---
web = by_path["py/app/web"]
web.tags.get("stable").delete()
check([t.name for t in web.tags.list(get_all=True)] == [], "stable still listed")
try:
    web.tags.get("stable")
    raise AssertionError("deleted tag still answers")
except gitlab.exceptions.GitlabGetError as e:
    check(e.response_code == 404, f"deleted tag: {e.response_code}")

# --- Bulk deletion: asynchronous (202); check exactly which tags remain. ---
bulk = by_path["py/app/bulk"]
deletions_path = f"/projects/{project.id}/registry/repositories/{bulk.id}/deletions"


def names():
    return {t.name for t in bulk.tags.list(get_all=True)}


def settled():
    """Every deletion request of the repository has finished."""
    reqs = gl.http_get(deletions_path)
    return all(r["status"] in ("done", "failed") for r in reqs) and reqs


def bulk_delete(expected, **rules):
    bulk.tags.delete_in_bulk(**rules)
    wait_for(f"bulk delete {rules} finished", settled)
    got = names()
    check(got == expected, f"after {rules}: {sorted(got)} != {sorted(expected)}")
    return got


remaining = set(BULK_TAGS)
remaining = bulk_delete(remaining - {"dev-a", "dev-b"}, name_regex_delete="dev-.*")
remaining = bulk_delete(remaining - {"v1.0", "v1.1"}, name_regex_delete="v.*", keep_n=2)
# Older than 11 days: latest (never), keep-me (name_regex_keep) and imm-1 (immutable) stay.
remaining = bulk_delete(
    remaining - {"old-1"}, name_regex_delete=".*", name_regex_keep="keep-.*", older_than="11d"
)
check(remaining == {"latest", "keep-me", "imm-1", "v1.2", "v2.0", "old-2"}, f"final {remaining}")
try:
    bulk.tags.delete_in_bulk(name_regex_delete="(")
    raise AssertionError("invalid regex accepted")
except gitlab.exceptions.GitlabDeleteError as e:
    check(e.response_code == 400, f"invalid regex: {e.response_code}")

# --- Cleanup policy settings. ---
policy = project.container_expiration_policy
for field in ("cadence", "enabled", "keep_n", "older_than", "name_regex", "name_regex_keep", "next_run_at"):
    check(field in policy, f"container_expiration_policy lacks {field}: {policy}")
project.container_expiration_policy_attributes = {
    "cadence": "7d",
    "enabled": True,
    "keep_n": 5,
    "older_than": "14d",
    "name_regex": "v.*",
    "name_regex_keep": "stable",
}
project.save()
policy = gl.projects.get(project.id).container_expiration_policy
want = {"cadence": "7d", "enabled": True, "keep_n": 5, "older_than": "14d", "name_regex": "v.*", "name_regex_keep": "stable"}
check({k: policy[k] for k in want} == want, f"policy {policy}")
check(policy["next_run_at"] is not None, f"next_run_at {policy}")
project.container_expiration_policy_attributes = {"keep_n": 7}
try:
    project.save()
    raise AssertionError("keep_n 7 accepted")
except gitlab.exceptions.GitlabUpdateError as e:
    check(e.response_code == 400, f"keep_n 7: {e.response_code}")
project = gl.projects.get(project.id)
check(project.container_expiration_policy["keep_n"] == 5, "a refused update changed the policy")

# --- container_registry_access_level. ---
project.container_registry_access_level = "private"
project.save()
check(gl.projects.get(project.id).container_registry_access_level == "private", "private")
project.container_registry_access_level = "disabled"
project.save()
check(gl.projects.get(project.id).container_registry_access_level == "disabled", "disabled")
try:
    project.repositories.list(get_all=True)
    raise AssertionError("repositories listed while the registry is disabled")
except gitlab.exceptions.GitlabListError as e:
    check(e.response_code in (403, 404), f"disabled listing: {e.response_code}")
project.container_registry_access_level = "enabled"
project.save()
check(len(project.repositories.list(get_all=True)) == 3, "enabled again")

print(json.dumps({"ok": True, "remaining": sorted(remaining)}))
sys.exit(0)
