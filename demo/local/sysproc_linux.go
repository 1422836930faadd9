package main

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr puts the child in its own process group, so that Ctrl-C reaches only this program, which
// then stops the children in order; and makes the kernel kill the child when the thread that started it
// ends, which happens when this program dies, even by SIGKILL.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
