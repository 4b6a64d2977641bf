//! The pure core: what the user asked for and what it means for each host.
//! Nothing here does I/O, so all of it is tested without hosts.

pub mod inventory;
