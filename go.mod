module github.com/duplexmq/duplex

go 1.26.8

require (
	github.com/eclipse/paho.golang v0.23.0
	github.com/go-stomp/stomp/v3 v3.1.3
	github.com/gorilla/websocket v1.5.3
)
