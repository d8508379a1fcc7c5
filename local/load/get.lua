-- wrk: GET /viral-clip/videos (first page) as the user whose token is in $TOKEN.
dofile(os.getenv("LOAD_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
