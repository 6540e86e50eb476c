#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod beid;
pub mod cli;
pub mod reader;
pub mod session;
pub mod sim;
pub mod trust;
