package command

import "errors"

// setAddressSpace fails: this system has no RLIMIT_AS.
func setAddressSpace(n uint64) error {
	return errors.New("OpenBSD has no address-space limit (RLIMIT_AS); leave Limits.AddressSpace at 0 here")
}
