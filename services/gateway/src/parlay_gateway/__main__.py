from parlay_gateway.main import main

main()
