"""Property: for any story of clock moves, rotations and restarts, exactly one key is valid,
except inside the grace window after a rotation, where the previous one is too."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.key_story import KeyStory, Step, stories
from tests.unit.fakes_keys import FakeClock, FakeKeyStore

GRACES = st.sampled_from([0, 1, 60, 3600])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), grace=GRACES)
def test_one_key_is_valid_except_in_grace_whatever_the_story(data: st.DataObject, grace: float) -> None:
    store = FakeKeyStore()
    story = KeyStory(lambda: store, FakeClock(), grace)
    steps: list[Step] = data.draw(stories(grace))
    for step in steps:
        story.play(step)
