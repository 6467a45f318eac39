package main

// startSMTP starts the SMTP listeners configured in d.cfg.
func startSMTP(d *deps) ([]service, error) {
	return nil, nil
}
