//! Copying a store into PostgreSQL (`agm store migrate`).
