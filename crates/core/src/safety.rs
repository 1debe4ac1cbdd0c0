//! Safety assessment of commands before anything runs them.
