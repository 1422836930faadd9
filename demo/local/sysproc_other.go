//go:build unix && !linux

package main

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr puts the child in its own process group, so that Ctrl-C reaches only this program, which
// then stops the children in order. Outside Linux, children outlive this program if it is killed.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
