"""`ecflow-remote web`: every profile server's suites in a browser, live, with job output and node actions."""
