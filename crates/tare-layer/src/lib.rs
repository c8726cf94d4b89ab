//! tare-layer
