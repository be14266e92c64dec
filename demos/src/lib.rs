//! Shared pieces of the ioselect demo programs.
