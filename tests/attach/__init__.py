"""The attach tests' real server (http.server) with a planted leak, and how the tests start and drive it."""
