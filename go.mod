module github.com/duplexmq/duplex

go 1.26.8

require (
	github.com/go-stomp/stomp/v3 v3.1.3
	github.com/gorilla/websocket v1.5.3
)

require github.com/kr/text v0.2.0 // indirect
