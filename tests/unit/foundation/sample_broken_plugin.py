"""A plugin module that fails on import, as a third-party plugin with a missing
dependency or a bug at module level would."""

raise RuntimeError("sample plugin failed on purpose: no API key configured")
