package mgmt

// command describes one MGMT command: its canonical name, its argument
// synopsis (what CAPA shows) and how many arguments it takes.
type command struct {
	name     string
	synopsis string
	minArgs  int
	maxArgs  int
	// badArgs is the reason sent when the argument count is wrong; commands
	// whose single argument is a value reuse that value's reason.
	badArgs string
}

const reasonBadArgs = "INVALID ARGUMENTS"

// authCommands are the commands of the AUTH phase, in CAPA order.
var authCommands = []command{
	{name: "CAPA", synopsis: "CAPA"},
	{name: "STLS", synopsis: "STLS"},
	{name: "USER", synopsis: "USER <name>", minArgs: 1, maxArgs: 1},
	{name: "PASS", synopsis: "PASS <password>", minArgs: 1, maxArgs: 1},
	{name: "QUIT", synopsis: "QUIT"},
}

// activeCommands are the commands of the ACTIVE phase, in CAPA order.
var activeCommands = []command{
	{name: "NOOP", synopsis: "NOOP"},
	{name: "CAPA", synopsis: "CAPA"},
	{name: "HISTORIC_CONNEC", synopsis: "HISTORIC_CONNEC"},
	{name: "LIVE_CONNEC", synopsis: "LIVE_CONNEC"},
	{name: "BYTES_TRANS", synopsis: "BYTES_TRANS"},
	{name: "USERS", synopsis: "USERS"},
	{name: "STATUS", synopsis: "STATUS"},
	{name: "MAX_USERS", synopsis: "MAX_USERS <n>", minArgs: 1, maxArgs: 1, badArgs: reasonInvalidMaxUsers},
	{name: "MAX_CONNEC", synopsis: "MAX_CONNEC <n>", minArgs: 1, maxArgs: 1, badArgs: reasonInvalidMaxConns},
	{name: "TIMEOUT", synopsis: "TIMEOUT <seconds>", minArgs: 1, maxArgs: 1, badArgs: reasonInvalidTimeout},
	{name: "RESUME", synopsis: "RESUME"},
	{name: "ADD_USER", synopsis: "ADD_USER <name> <password>", minArgs: 2, maxArgs: 2},
	{name: "DELETE_USER", synopsis: "DELETE_USER <name>", minArgs: 1, maxArgs: 1},
	{name: "RESET_USER_PASSWORD", synopsis: "RESET_USER_PASSWORD <name>", minArgs: 1, maxArgs: 1},
	{name: "CHANGE_PASSWORD", synopsis: "CHANGE_PASSWORD <old> <new>", minArgs: 2, maxArgs: 2},
	{name: "TRANSFORM", synopsis: "TRANSFORM [ON|OFF]", maxArgs: 1},
	{name: "QUIT", synopsis: "QUIT"},
}

// Failure reasons of the ACTIVE phase (SPEC §7), sent as "-ERR <REASON>".
// The AUTH phase answers every failure with a bare "-ERR" (SPEC §7), except
// reasonLineTooLong, which the framing rule sends in either phase.
const (
	reasonUnknown         = "UNKNOWN COMMAND"
	reasonLineTooLong     = "LINE TOO LONG"
	reasonBadLine         = "INVALID COMMAND LINE"
	reasonTooManyBad      = "TOO MANY BAD COMMANDS"
	reasonInvalidMaxUsers = "INVALID MAX USERS"
	reasonInvalidMaxConns = "INVALID MAX CONNECTIONS"
	reasonInvalidTimeout  = "INVALID TIMEOUT"
	reasonNotPaused       = "NOT PAUSED"
	reasonUserExists      = "USER ALREADY EXISTS"
	reasonMaxUsersReached = "MAX USERS REACHED"
	reasonInvalidUsername = "INVALID USERNAME"
	reasonInvalidPassword = "INVALID PASSWORD"
	reasonUserNotFound    = "USER NOT FOUND"
	reasonAdminNoDelete   = "ADMIN CANNOT BE DELETED"
	reasonUserInUse       = "USER IN USE"
	reasonNoTransform     = "NO TRANSFORM COMMAND CONFIGURED"
	reasonInternal        = "INTERNAL ERROR"
	reasonAuthRequired    = "AUTHENTICATION REQUIRED"
)

// TooManySessions is the line a client over the MGMT session limit
// (MaxSessions) gets before the connection is closed.
const TooManySessions = "-ERR TOO MANY SESSIONS"

func lookup(cmds []command, name string) (command, bool) {
	for _, c := range cmds {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}
