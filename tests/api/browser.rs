//! Browser tests: filled in with the web page.
