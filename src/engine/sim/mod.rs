//! What the simulation's hosts are made of, beyond the fake fleet.

pub mod dockerd;
