-- POST /api/v1/login for the benchmark account, on every request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench@example.com","password":"correct horse battery staple 42"}'
