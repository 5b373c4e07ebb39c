"""Session-wide test setup."""

import os
import tempfile

# runformat.seal keeps one key per runs root in the user's state folder; every test root is a fresh tmp folder,
# so the tests (and the servers and workers they start, which inherit the environment) keep theirs in a
# folder of their own instead of leaving thousands of keys in ~/.local/state.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="contrastscope-test-state-")
