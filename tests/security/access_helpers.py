"""Narrow principals for the access scenarios: a project key and a team admin.

``narrow_world`` builds, in the root tenant (through the API, as an admin would):
- teams ``inside`` and ``outside``, each with one project;
- ``project_key``: a key restricted to the ``inside`` project, of a user who is *admin of
  the whole tenant* (so only the key's restriction stands between it and everything);
- ``team_admin``: a user holding ``admin`` on the ``inside`` team only (with an
  unrestricted key);
- ``project_admin``: a user holding ``admin`` on the ``inside`` project only.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.api.helpers import ok, user_with_role
from tests.conftest import Api


@dataclass
class NarrowWorld:
    owner: httpx.AsyncClient
    owner_id: str
    team_in: str
    team_out: str
    project_in: str
    project_out: str
    keys: dict[str, str]  # "project key" | "team admin" | "project admin" -> token
    users: dict[str, str]  # the same names -> user id


async def narrow_world(api: Api, owner: httpx.AsyncClient) -> NarrowWorld:
    owner_id = ok(await owner.get("/v1/me"))["user_id"]
    team_in = ok(await owner.post("/v1/teams", json={"name": "inside"}), 201)["id"]
    team_out = ok(await owner.post("/v1/teams", json={"name": "outside"}), 201)["id"]
    p_in = ok(await owner.post("/v1/projects", json={"name": "p-in", "team_id": team_in}), 201)
    p_out = ok(await owner.post("/v1/projects", json={"name": "p-out", "team_id": team_out}), 201)
    keys, users = {}, {}
    users["project key"], keys["project key"] = await user_with_role(
        owner, "tenant-admin-with-project-key", "admin", project_id=p_in["id"]
    )
    users["team admin"], keys["team admin"] = await user_with_role(
        owner, "team-admin", "admin", scope="team", scope_id=team_in
    )
    users["project admin"], keys["project admin"] = await user_with_role(
        owner, "project-admin", "admin", scope="project", scope_id=p_in["id"]
    )
    return NarrowWorld(owner, owner_id, team_in, team_out, p_in["id"], p_out["id"], keys, users)
