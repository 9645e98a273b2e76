//! Structural-schema validation (filled in by the test-bed work).
