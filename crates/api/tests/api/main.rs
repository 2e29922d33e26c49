//! API integration tests: the real application on port 0 against a fresh database of
//! each engine. One test binary; areas are modules.

mod foundation;
mod organizations;
mod seed;
mod support;
