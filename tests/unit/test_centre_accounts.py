"""The simulated Centre's account views: its own user1 and ecfadmin, whatever accounts the machine has."""

from __future__ import annotations

from centre.centre import CENTRE_UID, CENTRE_USER, SERVER_USER, _without

MACHINE = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "user1:x:1001:1001::/home/user1:/bin/sh\n"  # the machine's own user1, as on the CI machine that broke
    f"someone:x:{CENTRE_UID}:100::/home/someone:/bin/sh\n"  # another account holding the Centre's uid
    "ecfadmin:x:1002:1002::/home/ecfadmin:/bin/sh"  # a last line without a newline
)


def test_the_machines_namesakes_and_uid_holders_are_left_out() -> None:
    ours = {CENTRE_USER, SERVER_USER, str(CENTRE_UID)}
    kept = _without(MACHINE, ours, id_field=2)
    assert kept == "root:x:0:0:root:/root:/bin/bash\n"


def test_shadow_lines_go_by_name_only() -> None:
    # A shadow line's third field is a date, not an id: 4242 there is no reason to drop the line.
    shadow = "root:*:4242::::::\nuser1:!:19000::::::"
    assert _without(shadow, {CENTRE_USER, str(CENTRE_UID)}, id_field=None) == "root:*:4242::::::\n"
