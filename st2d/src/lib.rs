//! `st2d` as a library: the HTTP server (`st2d serve`) so tests and embedding applications
//! can build the API router without sockets.

pub mod server;
