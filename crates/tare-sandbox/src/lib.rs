//! tare-sandbox
