"""The key-rotation property on the real JSON file store, corrupt key files included: a corrupt
file is set aside and the key it held stays valid for the grace window, like after a rotation."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from app.adapters.json_file_key_store import JsonFileKeyStore
from tests.support.key_story import KeyStory, Step, stories
from tests.unit.fakes_keys import FakeClock


@settings(max_examples=60, deadline=None)
@given(data=st.data(), grace=st.sampled_from([0, 60, 3600]))
def test_one_key_is_valid_except_in_grace_on_the_file_store(data: st.DataObject, grace: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "current_key.json"
        story = KeyStory(lambda: JsonFileKeyStore(path=path, lock_timeout=5), FakeClock(), grace,
                         corrupt=lambda content: path.write_text(content))
        steps: list[Step] = data.draw(stories(grace, corruption=True))
        for step in steps:
            story.play(step)
        assert JsonFileKeyStore(path=path).load().current == story.current
