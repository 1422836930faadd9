package localproc

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr puts the child in its own process group, so that Ctrl-C reaches only this program, which
// then stops the children in order; and has the kernel kill the child when the thread that started it ends,
// which happens when this program dies, even by SIGKILL: a killed run leaves no Consul, nginx or dynup behind.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills whatever is left in the process group that setSysProcAttr made for the child pid.
func killGroup(pid int) {
	syscall.Kill(-pid, syscall.SIGKILL)
}
