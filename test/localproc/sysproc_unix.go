//go:build unix && !linux

package localproc

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr puts the child in its own process group, so that Ctrl-C reaches only this program, which
// then stops the children in order. Outside Linux there is no Pdeathsig: children outlive this program if
// it is killed.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills whatever is left in the process group that setSysProcAttr made for the child pid.
func killGroup(pid int) {
	syscall.Kill(-pid, syscall.SIGKILL)
}
