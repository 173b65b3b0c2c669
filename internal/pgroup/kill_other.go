//go:build !unix

package pgroup

import "errors"

func killGroup(pgid int) error { return errors.New("pgroup: no process groups on this system") }
