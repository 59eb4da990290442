//! Property tests of every parser of outside data, and the secrets scan.
