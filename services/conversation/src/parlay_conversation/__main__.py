from parlay_conversation.main import main

main()
