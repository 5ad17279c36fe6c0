"""Claim paths and role mapping, including Keycloak and Microsoft Entra ID shapes."""

from __future__ import annotations

from musubi.sso.mapping import Grant, MappingConfig, Rule, claim_values, managed_grants, map_claims


def test_claim_values_by_dot_path_whole_name_first_string_or_list() -> None:
    claims = {
        "realm_access": {"roles": ["a", "b", 3]},
        "https://example.com/groups": "g1",
        "groups": "solo",
    }
    assert claim_values(claims, "realm_access.roles") == ["a", "b"]
    assert claim_values(claims, "https://example.com/groups") == ["g1"]
    assert claim_values(claims, "groups") == ["solo"]
    assert claim_values(claims, "realm_access.missing") == []
    assert claim_values(claims, "") == []


def test_rules_grant_roles_at_each_scope() -> None:
    config = MappingConfig(
        groups_claim="realm_access.roles",
        default_role="viewer",
        rules=[
            Rule(value="admins", role="admin"),
            Rule(value="team-x", role="maintainer", scope="team", scope_id="team_1"),
            Rule(value="nobody", role="owner"),
        ],
    )
    mapped = map_claims(
        {"sub": "s", "realm_access": {"roles": ["team-x", "admins"]}, "email": "a@x"}, config
    )
    assert mapped.grants == [
        Grant("viewer"),
        Grant("admin"),
        Grant("maintainer", "team", "team_1"),
    ]
    assert mapped.username == "a@x" and mapped.subject == "s"
    assert Grant("owner") in managed_grants(config)


def test_entra_oid_tid_roles_and_group_overage() -> None:
    config = MappingConfig(entra=True, rules=[Rule(value="Musubi.Admin", role="admin")])
    claims = {
        "sub": "pairwise-per-app",
        "oid": "00000000-aaaa",
        "tid": "tenant-guid",
        "roles": ["Musubi.Admin"],
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/..."}},
        "upn": "alice@corp.example",
    }
    mapped = map_claims(claims, config)
    assert mapped.subject == "tenant-guid/00000000-aaaa"
    assert mapped.grants == [Grant("admin")]
    assert mapped.username == "alice@corp.example"
    assert any("group overage" in w for w in mapped.warnings)
    no_ids = map_claims({"sub": "s"}, config)
    assert no_ids.subject == "s" and any("no oid/tid" in w for w in no_ids.warnings)
