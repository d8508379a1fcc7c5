-- wrk: POST /viral-clip/video/youtube as the user whose token is in $TOKEN.
dofile(os.getenv("LOAD_DIR") .. "/report.lua")
wrk.method = "POST"
wrk.body = '{"youtube_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "aspect_ratio": "9:16"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
