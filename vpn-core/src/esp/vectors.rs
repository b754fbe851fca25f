//! Known-answer tests from the RFCs and drafts.
