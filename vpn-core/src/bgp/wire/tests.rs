//! Byte-exact, round-trip and property tests for the BGP wire format.
