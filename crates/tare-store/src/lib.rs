//! tare-store
