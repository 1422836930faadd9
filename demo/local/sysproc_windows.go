package main

import "os/exec"

// setSysProcAttr does nothing on Windows: Consul's and dynup's demo is run on Linux and macOS.
func setSysProcAttr(cmd *exec.Cmd) {}
