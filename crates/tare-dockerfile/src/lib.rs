//! tare-dockerfile
