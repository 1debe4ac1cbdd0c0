//! CI platforms.
