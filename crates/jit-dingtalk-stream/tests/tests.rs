//! Integration tests of jit-dingtalk-stream against the simulator's Stream gateway.
