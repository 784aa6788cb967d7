"""Hostile and odd input through the ``snapkeep`` CLI (issue 6, defects 3, 7, 9): each refusal is one
``error: <message> (<code>)`` line with the error's exit code, and says what to do instead."""

from __future__ import annotations

import json

from tests.integration.test_cli import Cli, cli, make_volume, unique  # noqa: F401 (cli is a fixture)


def test_settings_set_remove_and_refuse(cli: Cli) -> None:  # noqa: F811
    vol = make_volume(cli)["name"]
    cli.ok("volume", "update", vol, "--set", "nfs=on", "--set", 'acl={"ro": true, "rw": false}', "--set", "n=NaN")
    shown = cli.json("volume", "show", vol)
    assert shown["settings"] == {"nfs": "on", "acl": {"ro": True, "rw": False}, "n": "NaN"}
    cli.ok("volume", "update", vol, "--set", "nfs=null", "--set", 'acl={"rw": null}')
    assert cli.json("volume", "show", vol)["settings"] == {"acl": {"ro": True}, "n": "NaN"}

    deep = json.dumps(json.loads("[" * 40 + "]" * 40))
    err = cli.refused("volume", "update", vol, "--set", f"deep={deep}", code="invalid_settings", exit_code=2)
    assert "levels deep" in err
    assert cli.json("volume", "show", vol)["settings"] == {"acl": {"ro": True}, "n": "NaN"}
    assert cli.json("snapshot", "take", "--volume", vol, "--name", "still-works")["status"] == "succeeded"


def test_sizes_expiries_and_descriptions_out_of_range_say_why(cli: Cli) -> None:  # noqa: F811
    for size in ("\uff11G", "99999999999999999999P", "9" * 400, "0"):
        err = cli.refused("volume", "create", unique("cli"), "--size", size, code="invalid_input", exit_code=2)
        assert "size" in err
    vol = make_volume(cli)["name"]
    for expires in ("9999999d", "9999-12-31T23:59:59-14:00", "\uff17d"):
        err = cli.refused(
            "snapshot", "take", "--volume", vol, "--name", "x", "--expires", expires,
            code="invalid_expiry", exit_code=2,
        )  # fmt: skip
    assert "out of range" in cli.refused(
        "snapshot", "take", "--volume", vol, "--name", "x", "--expires", "1000y", code="invalid_expiry", exit_code=2
    )
    err = cli.refused("volume", "update", vol, "--description", "d" * 5000, code="invalid_input", exit_code=2)
    assert "4096" in err
    assert cli.json("snapshot", "list", "--volume", vol) == []
