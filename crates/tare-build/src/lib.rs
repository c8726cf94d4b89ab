//! tare-build
