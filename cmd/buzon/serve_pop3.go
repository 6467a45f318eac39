package main

// startPOP3 starts the POP3 listeners configured in d.cfg.
func startPOP3(d *deps) ([]service, error) {
	return nil, nil
}
