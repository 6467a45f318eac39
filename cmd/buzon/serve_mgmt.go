package main

// startMGMT starts the MGMT listeners configured in d.cfg.
func startMGMT(d *deps) ([]service, error) {
	return nil, nil
}
