pub mod config;
pub mod demo;
pub mod serve;
