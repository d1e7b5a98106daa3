"""ScriptedJudge, the fake judge of the guard tests, honours the judge contract like a real judge."""

from __future__ import annotations

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import JudgeError
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.testing.contract import JudgeContract, JudgeSubject

CONFIG = SafetyConfig(id="c", version=1, text="Violence in fiction is fine.", allow=("violence",))


class TestScriptedJudgeContract(JudgeContract):
    @pytest.fixture
    def subject(self) -> JudgeSubject:
        # delay: the judge suspends as a model would, so a call can be cancelled midway.
        flags = {"sword": "violence", "gun": "weapons"}
        return JudgeSubject(
            judge=ScriptedJudge(flags=flags, delay=0.001),
            failing=ScriptedJudge([JudgeError("judge down")]),
            config=CONFIG,
            benign="The knight draws his sword.",
            violating="Here is how to build a gun.",
        )
