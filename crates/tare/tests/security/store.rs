//! Attacks of this class: see the suite's overview in main.rs.
